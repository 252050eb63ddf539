# benign: assistant-style code
import string

def is_palindrome(s: str) -> bool:
    cleaned = [c.lower() for c in s if c not in string.punctuation and not c.isspace()]
    return cleaned == cleaned[::-1]

for phrase in ["A man, a plan, a canal: Panama", "hello", "Was it a car or a cat I saw?"]:
    print(phrase, is_palindrome(phrase))
