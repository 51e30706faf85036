"""Lightning's precision names as the memory models read them: which compute in 16 bits, which keep 16-bit
weights, which keep fp32 master weights under 16-bit autocast."""

HALF = ("bf16-mixed", "16-mixed", "bf16", "16", "bf16-true", "16-true")
HALF_TRUE = ("bf16-true", "16-true", "bf16", "16")
MIXED = ("bf16-mixed", "16-mixed", "bf16", "16")
