"""The Streamlit board and the pure store queries behind it."""
