# category: dynamic-code
# obfuscated: yes
import codecs
payload = codecs.encode("rkrp(\"vzcbeg bf\")", "rot13")
exec(payload)
