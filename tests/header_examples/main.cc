// The binary that links the header examples (the .cc files extract.py
// generates from include/leakguard's top comments). Building it is the
// test: an example that does not compile, or calls something libleakguard
// does not export, breaks the build. Nothing runs; the examples need an
// interpreter, which this binary never starts.

int main() { return 0; }
