"""What the tests and the benchmarks share: free ports, real servers, a whole stack, a fake
clock, sample images, stocks stored beforehand, read-only directories and the programs a
test needs."""
