"""Generated from protos/genserve/oip/inference.proto (the Open Inference Protocol); never edited by hand."""
