# benign: assistant-style code
text = "The quick brown fox jumps over the lazy dog. The dog sleeps."
sentences = [s.strip() for s in text.split(".") if s.strip()]
words = text.replace(".", "").split()
print("sentences:", len(sentences))
print("words:", len(words))
print("avg word length:", round(sum(map(len, words)) / len(words), 2))
print("longest:", max(words, key=len))
