"""The official family: converting and running the official SemTalk weights."""
