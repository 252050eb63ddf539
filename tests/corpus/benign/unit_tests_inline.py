# benign: assistant-style code
import unittest

def slugify(s: str) -> str:
    return "-".join(s.lower().split())

class SlugTest(unittest.TestCase):
    def test_basic(self):
        self.assertEqual(slugify("Hello World"), "hello-world")

if __name__ == "__main__":
    unittest.main()
