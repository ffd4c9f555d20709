"""The batch worker: sources of studies, the loop that scores them, write-back to the PACS.

Runs with ONNX Runtime alone: importing it never imports torch.
"""
