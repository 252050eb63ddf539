# category: process
# obfuscated: no
import os
import threading
threading.Thread(target=os.system, args=("id",)).start()
