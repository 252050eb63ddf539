# category: process
# obfuscated: no
# red-team: os.system bound as __call__ through staticmethod
import os
class A:
    __call__ = staticmethod(os.system)
A()("id")
