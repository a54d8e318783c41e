FLASK_APP=speakup
