"""`python -m jingmin_metrics.stream worker -l info`: one metrics processor."""

from jingmin_metrics.stream.app import main

main()
