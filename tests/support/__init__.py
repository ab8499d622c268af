"""What the test modules share, so that none imports another: the processes they start, fakes, harnesses."""
