"""Live chat on the viewer WebSocket (docs/chat.md): messages, moderation and comment-to-buy.

Pure parts: ``frames`` (the wire types), ``limits`` (bounds, the token bucket), ``normalise``
(display text and the matching skeleton for blocked words), ``room`` (what a node knows of one
show's chat, and how log entries fold into it), ``claims.parse`` (the claim grammar). Thin shells
around them: ``store`` (the Lua scripts on a show's chat keys), ``moderation`` (host and moderator
actions), ``claims`` (a claim comment through the stock engine's reserve path), ``node`` (one
node's chat: follows each show's chat log, sends one chat frame per show per tick) and ``api``
(the host endpoints).
"""
