# category: deserialization
# obfuscated: no
import marshal
code = marshal.loads(open("blob.bin", "rb").read())
print(code)
