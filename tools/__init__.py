"""Scripts behind the Makefile targets: free-threaded builds, optional installs, matrix, stability."""
