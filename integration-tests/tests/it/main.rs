mod local;
