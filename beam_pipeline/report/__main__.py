"""`python -m beam_pipeline.report OUTPUT_DIR`: (re)builds OUTPUT_DIR/report.html."""

from beam_pipeline.report.page import main

main()
