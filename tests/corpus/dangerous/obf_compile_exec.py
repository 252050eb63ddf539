# category: dynamic-code
# obfuscated: yes
import base64
src = base64.b64decode(b"cHJpbnQoX19pbXBvcnRfXygnb3MnKS5saXN0ZGlyKCcvJykp").decode()
code = compile(src, "<string>", "exec")
exec(code)
