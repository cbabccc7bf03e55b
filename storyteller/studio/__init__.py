"""The writing studio's data: the story library, drafts, exports and the rater session."""
