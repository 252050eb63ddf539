# category: deserialization
# obfuscated: no
import pickle, base64
blob = input("paste model: ")
model = pickle.loads(base64.b64decode(blob))
print(model)
