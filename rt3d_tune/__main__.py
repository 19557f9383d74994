from rt3d_tune.cli import console_main

console_main()
