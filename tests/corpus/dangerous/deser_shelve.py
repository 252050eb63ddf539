# category: deserialization
# obfuscated: no
import shelve
with shelve.open("store") as db:
    print(list(db.items()))
