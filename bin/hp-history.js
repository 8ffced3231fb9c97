#!/usr/bin/env node
import { main } from '../dist/cmd/history.js';
main(process.argv.slice(2));
