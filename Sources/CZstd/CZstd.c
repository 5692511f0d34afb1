// Declarations only (include/CZstd.h); the code is the system's libzstd.so.1.
