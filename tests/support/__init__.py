"""What the test modules share, so that none imports another: processes and servers they start, fakes, harnesses."""
