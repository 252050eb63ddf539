# category: process
# obfuscated: no
import os
pid = os.spawnlp(os.P_NOWAIT, "sleep", "sleep", "1000")
print("spawned", pid)
