# category: process
# obfuscated: no
# red-team: os.system handed to map() as a value, never called directly
import os
list(map(os.system, ["id"]))
