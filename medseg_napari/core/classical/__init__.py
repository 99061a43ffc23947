"""Classical segmentation: thresholds, seeded region growing and mask-editing tools."""
