"""Self-contained HTML reports (run and compare); matplotlib and PIL load only when one is
written."""

from coordbench.report.html import write_compare_report, write_run_report

__all__ = ["write_compare_report", "write_run_report"]
