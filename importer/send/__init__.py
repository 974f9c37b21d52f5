"""Talking to Graph: tokens (auth), the client and what each answer means (classify), the retry
policy, and the pacing of writes and reads under Intune's throttle."""
