# category: deserialization
# obfuscated: no
import pickle
with open("cache.pkl", "rb") as fh:
    state = pickle.load(fh)
print(state.keys())
