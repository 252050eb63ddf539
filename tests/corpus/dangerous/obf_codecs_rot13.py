# category: dynamic-code
# obfuscated: yes
import codecs
s = 'vzcbeg bf; bf.flfgrz("jubnzv")'
exec(codecs.decode(s, "rot_13"))
