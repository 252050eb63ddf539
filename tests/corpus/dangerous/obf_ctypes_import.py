# category: ffi
# obfuscated: yes
c = __import__("ct" + "ypes")
c.CDLL(None).system(b"id")
