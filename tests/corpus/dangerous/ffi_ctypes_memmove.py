# category: ffi
# obfuscated: no
import ctypes
buf = ctypes.create_string_buffer(16)
ctypes.memmove(id(object()), buf, 16)
