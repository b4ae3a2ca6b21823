"""RL optimizer: a gymnasium env over the flow, PPO / random / TPE agents, Ray-parallel evaluation."""
