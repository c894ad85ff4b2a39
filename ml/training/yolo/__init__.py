"""The `yolo` job kind: fine-tune an ultralytics detector on the human boxes, scored per image like a classifier."""
