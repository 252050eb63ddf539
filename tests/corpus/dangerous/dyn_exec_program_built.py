# category: dynamic-code
# obfuscated: no
# exec of a built string binds names and runs statements: not relaxed like eval.
for i in range(3):
    exec(f"square_{i} = {i} * {i}")
print(square_2)  # noqa: F821
