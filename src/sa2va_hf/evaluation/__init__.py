"""Benchmark evaluation of Sa2VA predictors with the official protocols (reference §7).

- `metrics`: cIoU / gIoU, J / F / J&F, ReVOS A / R, COCO RLE helpers.
- `refcoco`: RefCOCO / RefCOCO+ / RefCOCOg / gRefCOCO runner (`main(argv)`, `sa2va-hf eval refcoco`).
- `refvos`: MeViS / Ref-DAVIS17 / ReVOS / Ref-YouTube-VOS / Ref-SAV runner (`sa2va-hf eval refvos`).
- `gcg`: grounded conversation generation metrics and runner (`sa2va-hf eval gcg`).
- `runner`, `distributed`: predictors, resumable records, `accelerate` sharding.

Nothing heavy is imported here; import the submodule you need.
"""
