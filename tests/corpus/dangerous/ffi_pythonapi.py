# category: ffi
# obfuscated: no
from ctypes import pythonapi, py_object, c_int
pythonapi.PyThreadState_SetAsyncExc.argtypes = [c_int, py_object]
