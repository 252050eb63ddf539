# category: introspection
# obfuscated: no
import sys
def tracer(frame, event, arg):
    print(event, frame.f_code.co_name)
    return tracer
sys.settrace(tracer)
