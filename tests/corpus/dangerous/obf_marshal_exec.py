# category: dynamic-code
# obfuscated: yes
import marshal, base64
blob = base64.b64decode("4wAAAAAAAAAAAAAAAAAAAAABAAAAQAAAAHMIAAAAZQBkAIMBAQBkAVMAKQLaAmhpTikB2gVwcmludKkAcgIAAAByAgAAAPoBeNoIPG1vZHVsZT4BAAAA8wAAAAA=")
exec(marshal.loads(blob))
