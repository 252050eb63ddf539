# category: process
# obfuscated: no
import os
print({"k": os.popen}["k"]("id").read())
