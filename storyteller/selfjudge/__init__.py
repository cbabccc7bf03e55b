"""`storyteller pairs`: a model writes several stories per training prompt, the story judge
(storyteller.judge) scores each, and the best and worst of a prompt become a preference pair."""
