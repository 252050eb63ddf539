# category: process
# obfuscated: no
import os
import signal
signal.signal(signal.SIGUSR1, os.system)
os.kill(os.getpid(), signal.SIGUSR1)
