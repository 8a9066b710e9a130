"""`python -m coordbench` (used by torchrun:
`torchrun --nproc_per_node N -m coordbench run ...`)."""

from coordbench.cli.main import main

main(prog_name="coordbench")
