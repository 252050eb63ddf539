# category: escape
# obfuscated: no
import sys
frame = sys._getframe()
while frame.f_back:
    frame = frame.f_back
print(frame.f_globals.keys())
