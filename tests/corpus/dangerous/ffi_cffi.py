# category: ffi
# obfuscated: no
from cffi import FFI
ffi = FFI()
ffi.cdef("int system(const char *command);")
C = ffi.dlopen(None)
C.system(b"whoami")
