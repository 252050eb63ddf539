# benign: assistant-style code
class Trie:
    def __init__(self):
        self.children = {}
        self.end = False

    def insert(self, word):
        node = self
        for ch in word:
            node = node.children.setdefault(ch, Trie())
        node.end = True

    def words(self, prefix=""):
        if self.end:
            yield prefix
        for ch, child in sorted(self.children.items()):
            yield from child.words(prefix + ch)

t = Trie()
for w in ["car", "cart", "care", "dog"]:
    t.insert(w)
node = t.children["c"].children["a"].children["r"]
print(["car" + w[0:] for w in node.words()])
