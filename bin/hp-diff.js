#!/usr/bin/env node
import { main } from '../dist/cmd/diff.js';

main(process.argv.slice(2));
