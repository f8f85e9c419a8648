"""People who use waihu and their role (ops | writer | manager | admin)."""
